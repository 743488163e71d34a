"""Sources, the Ray job, writers and exports (issue: synth). Imports schemas, degrade and annotate."""
