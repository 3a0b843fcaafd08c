"""The stage pipeline: experiment graph -> hashed stages -> plans -> training through the stage cache -> results rows."""
