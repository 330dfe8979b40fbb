"""GRPO post-training with the judge service as reward (ParaS2SAlign, small): config, policies,
the loop, and the SFT-vs-GRPO experiment."""
