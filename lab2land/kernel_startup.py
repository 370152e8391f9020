"""Executed by every run's kernel at start-up (``--IPKernelApp.exec_files``), before user code.

Run by path in the kernel's own interpreter, which need not have lab2land installed: standard
library only, and it leaves no names in the notebook's namespace.

A lone surrogate (``print("\\ud800")``) cannot be encoded by the kernel's message packer: ipykernel
then drops the whole stream flush and logs a jupyter_client traceback, with the build machine's
paths, into the output instead. The streams write such characters as backslash escapes, so the
text survives. (exec_lines would not do: each runs as a cell, and IPython restores the streams'
``write`` after every cell.)

At exit, ipykernel stops its iopub thread before its control thread; a control thread still
flushing the shutdown reply then waits out its flush timeout, and the kernel manager, tired of
waiting for a graceful exit (2.5 s), sends SIGTERM: a third of the runs lost 2.5 s that way, and
their kernels' own exit handlers. An exit handler registered here (after ipykernel's: handlers
run last-registered first) stops the control thread while iopub still runs.
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


def _stop_control_thread_first():
    import atexit
    import sys

    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None or not kernelapp.IPKernelApp.initialized():
        return
    app = kernelapp.IPKernelApp.instance()

    def stop_control_thread():
        control = getattr(app, "control_thread", None)
        if control is not None and control.is_alive():
            control.stop()
            control.join(5)

    atexit.register(stop_control_thread)


_guard_streams()
_stop_control_thread_first()
del _guard_streams, _stop_control_thread_first
