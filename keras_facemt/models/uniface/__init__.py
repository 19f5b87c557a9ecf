"""uniface."""
