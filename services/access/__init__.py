"""Access control: who is calling (tokens), what each role may do, who owns which model, and the
record of every refused attempt."""
