"""The ``policyctl`` command line: wiring only; every decision is made in the layers."""
