"""CrossGuard policy pack for Chorus (see policies.py)."""
