"""orgmail: transactional email and mailbox provisioning for an organization."""

__version__ = "0.1.0"
