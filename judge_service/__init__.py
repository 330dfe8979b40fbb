"""ParaS2S judge service: a batched reward model that scores spoken replies for content and
speaking style (Yang et al., "ParaS2S", ICLR 2026)."""

__version__ = "0.1.0"
