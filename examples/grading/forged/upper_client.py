"""A FORGER (a cheating student's client, kept to prove the checks hold): it connects
nowhere and prints the answer it knows the server would give. What it prints is its own
say-so; the check reads what the teacher's server saw."""
import sys

print(sys.argv[3].upper())
