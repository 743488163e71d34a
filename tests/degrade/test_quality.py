"""The fidelity figures every record carries, against scikit-image's reference implementations."""

from __future__ import annotations

import cv2
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import robustgen as rg
from robustgen.degrade.quality import psnr, ssim
from robustgen.images import load_image


@pytest.mark.parametrize("name", ["noise", "compression", "motion_blur", "darkness"])
def test_psnr_and_ssim_agree_with_scikit_image(name):
    clean = cv2.resize(load_image("skimage:astronaut"), (370, 340))
    degraded = rg.degrade_image(clean, name, 0.6, seed=3)[0]
    assert psnr(clean, degraded) == pytest.approx(peak_signal_noise_ratio(clean, degraded, data_range=255), abs=1e-9)
    luma = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (clean, degraded)]  # f = 1 at this size: no averaging
    ref = structural_similarity(*luma, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(clean, degraded) == pytest.approx(ref, abs=0.01)  # skimage crops the borders; they are reflected here


def test_identical_images_score_the_ceiling():
    img = load_image("skimage:coffee")
    assert psnr(img, img.copy()) == 100.0
    assert ssim(img, img.copy()) == pytest.approx(1.0, abs=1e-6)
    one_off = img.copy()
    one_off[0, 0, 0] ^= 1
    assert psnr(img, one_off) == 100.0  # capped: no image scores above an identical one
    noisy = rg.degrade_image(img, "noise", 0.2, seed=0)[0]
    assert 20.0 < psnr(img, noisy) < 100.0
