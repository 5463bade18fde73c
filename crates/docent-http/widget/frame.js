// Placeholder frame script: the real one is helper wfront's.
