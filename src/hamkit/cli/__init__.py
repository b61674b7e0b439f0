"""The ``hamkit`` command line: a thin layer over the public Python API.

Each subcommand lives in its own module with two functions: ``add_parser(subparsers)`` builds its
argparse parser without importing anything heavy, and ``run(args)`` does the work, importing the
library only then. ``hamkit --help`` therefore never imports torch.
"""
