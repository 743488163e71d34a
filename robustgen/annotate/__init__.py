"""Teachers that write reasoning chains (issue: annotation). Imports schemas and the degrader registry."""
