"""Probe cases: the shared case format, its reader and address plan, the engine protocol and the runner.

Every decider (the model, the compiled ruleset, the lab's kernel) answers the same cases through
the ``engines.Engine`` protocol, so each checks the others (``../shared/spec/probe-cases.md``).
The compiled and lab adapters live with their engines above this layer.
"""
