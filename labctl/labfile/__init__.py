"""The lab file as a whole: load_lab and the scenarios it declares."""
