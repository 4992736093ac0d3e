"""RLlib's env runners take btgym env ids ("btgym:btgym/CartPole-v0") and train."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.rllib")  # btgym[rllib]; installed by `make test`

pytestmark = [pytest.mark.slow, pytest.mark.blender, pytest.mark.timeout(600)]


def test_a_few_rllib_ppo_iterations_run_on_btgym_cartpole():
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = (
            PPOConfig()
            .environment("btgym:btgym/CartPole-v0")
            .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
            .training(train_batch_size_per_learner=256, minibatch_size=64, num_epochs=2)
        )
        algorithm = config.build_algo()
        try:
            results = [algorithm.train() for _ in range(2)]
        finally:
            algorithm.stop()
        sampled = results[-1]["env_runners"]["num_env_steps_sampled_lifetime"]
        assert sampled >= 512
        assert results[-1]["env_runners"]["episode_return_mean"] > 0
    finally:
        ray.shutdown()
