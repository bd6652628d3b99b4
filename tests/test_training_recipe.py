"""The diffusion recipe: zero terminal SNR v-prediction, min-SNR weights that still train the last step."""
import pytest
import torch

from training.recipe import diffusion_loss, loss_weights, noise_schedule, x0_estimate


def test_zero_terminal_snr_schedule_reaches_pure_noise_with_trailing_steps():
    schedule = noise_schedule()
    assert float(schedule.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-8)
    assert schedule.config.prediction_type == "v_prediction" and schedule.config.timestep_spacing == "trailing"
    old = noise_schedule("epsilon", zero_terminal_snr=False)
    assert float(old.alphas_cumprod[-1]) ** 0.5 == pytest.approx(0.0064, abs=2e-4)


def test_epsilon_prediction_is_refused_at_zero_terminal_snr():
    with pytest.raises(ValueError, match="v_prediction"):
        noise_schedule("epsilon", zero_terminal_snr=True)


def test_min_snr_weights_keep_the_terminal_step_trained_and_cap_clean_inputs():
    schedule = noise_schedule()
    weights = loss_weights(schedule, torch.tensor([0, 500, 999]), snr_gamma=5.0)
    assert weights[2] == pytest.approx(1.0) and weights[0] < 0.01 and 0 < weights[1] <= 1
    assert torch.equal(loss_weights(schedule, torch.tensor([3, 999]), None), torch.ones(2))


def test_a_perfect_v_prediction_has_zero_loss_and_recovers_x0():
    schedule = noise_schedule()
    clean = torch.rand(3, 1, 4, 4) * 2 - 1
    noise = torch.randn(3, 1, 4, 4)
    timesteps = torch.tensor([10, 600, 999])

    def oracle(noisy, steps):
        return schedule.get_velocity(clean, noise, steps)

    assert diffusion_loss(oracle, schedule, clean, noise, timesteps, 5.0).item() == pytest.approx(0.0, abs=1e-10)
    noisy = schedule.add_noise(clean, noise, timesteps)
    assert torch.allclose(x0_estimate(oracle(noisy, timesteps), noisy, timesteps, schedule), clean, atol=1e-4)
