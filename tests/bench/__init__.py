"""Tests of the cluster generator and the performance suite."""
