"""The ``dlprep`` console script: runs the native command-line tool shipped in the wheel."""
import os
import sys


def binary_path():
    """Path of the ``dlprep`` executable inside the installed package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "dlprep")


def main():
    exe = binary_path()
    if not os.path.exists(exe):
        sys.stderr.write(f"dlprep: the command-line tool is missing from the package ({exe}); "
                         "reinstall dlprep\n")
        return 1
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
