"""The daily pipeline's contract: its steps in order, and the quality gate both the state machine and local mode use."""
