"""The command lines: the flags of each script and their conversion into the package's calls. The only place an
argparse Namespace exists."""
