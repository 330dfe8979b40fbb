"""The judge's stages: ASR, prosody, style labels, response tone and rubric scoring."""
