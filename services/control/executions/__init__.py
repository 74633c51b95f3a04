"""Executions: admission against the tenant's quota, the state machine, the
record of every execution (verdict, previews, output files), cancellation,
heartbeats and the watchdog. The relay to the spawners is
services/control/relay.py."""
