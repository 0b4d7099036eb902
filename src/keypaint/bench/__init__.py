"""Benches: keypaint against plain diffusers, side by side in one process (`keypaint bench cpu|gpu`).

Results and the commands that made them: docs/performance.md. Speed is never asserted in a test; the
tests run these code paths at tiny sizes so they keep working.
"""
