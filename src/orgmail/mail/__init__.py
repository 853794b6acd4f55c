"""Adapters to the outside world (mail store, DKIM, DNS, relay), each behind a small interface."""
