"""Executed by every run's kernel at start-up (``--IPKernelApp.exec_files``), before user code.

Run by path in the kernel's own interpreter, which need not have lab2land installed: standard
library only, and it leaves no names in the notebook's namespace.

A lone surrogate (``print("\\ud800")``) cannot be encoded by the kernel's message packer: ipykernel
then drops the whole stream flush and logs a jupyter_client traceback, with the build machine's
paths, into the output instead. The streams write such characters as backslash escapes, so the
text survives. (exec_lines would not do: each runs as a cell, and IPython restores the streams'
``write`` after every cell.)
"""


def _guard_streams():
    import sys

    def escaping(write):
        def write_escaped(text, *args, **kwargs):
            if isinstance(text, str):
                text = text.encode("utf-8", "backslashreplace").decode("utf-8")
            return write(text, *args, **kwargs)
        return write_escaped

    for stream in (sys.stdout, sys.stderr):
        stream.write = escaping(stream.write)


_guard_streams()
del _guard_streams
