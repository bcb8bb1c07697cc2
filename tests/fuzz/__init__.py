"""Fuzzing the lab-file reader: hostile.py makes the inputs, run.py runs 10,000 of them
(`make fuzz`); tests/unit/test_fuzz.py runs a short fixed set with Hypothesis."""
