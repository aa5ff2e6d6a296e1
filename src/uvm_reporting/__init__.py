"""uvm-reporting: a self-hostable Reporting API for vulnerability-management data."""

__version__ = "0.1.0"
