"""The staff console's views, one module per area. Every view states its access in its
decorator stack: `accounts.operate` to read, `accounts.administer` to act;
tests/console/test_access.py walks the URLconf and fails for a view that lets the wrong
person in."""
