"""The Gradio demo contrasting folded and unfolded inference."""
