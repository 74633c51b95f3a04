"""Tenants' quotas: the one row per tenant that admission and every
storage write lock, the daily CPU and slot-time budgets, the storage
counters, and the pure checks over them."""
