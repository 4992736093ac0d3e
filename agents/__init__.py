"""Agents that drive btgym envs: RL agents (``agents.ppo``) and, later, curriculum controllers."""
