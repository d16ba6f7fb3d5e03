"""Tests of the OEC.sh API simulator (oec_simulator)."""
