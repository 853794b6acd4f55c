"""The domain: plain async functions over a session. No HTTP here; every function takes org_id first."""
