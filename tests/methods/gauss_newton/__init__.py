"""Tests of growkit/methods/gauss_newton/."""
