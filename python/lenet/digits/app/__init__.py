"""The application around the reader: ``lenet-digits`` (cli) and its live window (live). It uses
the runtime reader (lenet.digits) and nothing of the kit (lenet.digits.kit)."""
