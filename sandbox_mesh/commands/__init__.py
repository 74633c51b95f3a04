"""sandboxctl's commands, one module per group; sandbox_mesh.cli puts them
together under the `main` group."""
