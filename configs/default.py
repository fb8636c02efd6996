"""Defaults shared by every config: the official CREMA model and training recipe.

Every knob of the method is a field here (docs/method.md, sections 2-6); the other config files
override what differs. Not meant to be run directly.
"""

import ml_collections
from ml_collections import config_dict


def get_config():
    config = ml_collections.ConfigDict()
    config.name = "default"
    config.seed = 0

    # Data: what each training example contains (docs/method.md, section 4).
    config.data = ml_collections.ConfigDict()
    config.data.dataset_dir = ""  # A prepared TFRecord dataset (data/prepare.py).
    # With no dataset_dir: bundled clips, prepared into a cache on first use.
    config.data.samples_dir = ""
    config.data.image_size = 128
    config.data.motion_frames = 2  # m_x
    config.data.audio_context = 2  # m_y: audio window is frames k-m_y .. k+m_y
    config.data.grayscale_motion = False
    config.data.audio_dim = 256  # per-frame embedding size (256 for the SDA encoder)
    config.data.audio_encoder = "sda"
    config.data.mel_bins = 64  # mel encoder only: D = mel_bins * mel_subframes
    config.data.mel_subframes = 4
    config.data.mel_fmin = 0.0  # mel band edges in Hz
    config.data.mel_fmax = 8000.0
    # Whose landmarks define the lip-loss box: "target" (the paper) or "identity"
    # (the official code's behaviour, a bug kept for reproduction).
    config.data.lip_box_source = "target"
    config.data.lip_box_margin = 5
    # Which clips an epoch's examples come from (dheads_jax/data/plan.py): 0 (official) takes
    # every clip once; s > 0 draws clips with probability ~ (clips of their speaker) ** -s
    # [ours], so 1 shows every speaker equally often and 0.5 lies between.
    config.data.speaker_balance = 0.0
    # Shards read (and shuffled) together: the shuffle window of an epoch; the tf.data
    # pipeline holds their serialized clips in memory.
    config.data.shuffle_shards = 4

    # Model (docs/method.md, section 2). Input channels follow from the data fields.
    config.model = ml_collections.ConfigDict()
    config.model.model_channels = 256
    config.model.channel_mult = (1, 2, 3)
    config.model.num_res_blocks = 2
    config.model.attention_resolutions = (32,)  # feature-map size in pixels
    config.model.head_channels = 64
    config.model.dropout = 0.1
    config.model.out_channels = 6  # eps and v (learned-range variance)
    config.model.resblock_updown = True
    config.model.num_groups = 32
    # [ours] () (official) or a (top, bottom, left, right) box in fractions of the image side
    # that is blanked (set to 0) in every motion frame, in training and sampling, so that the
    # mouth has to come from the audio instead of being copied from the previous frames.
    config.model.motion_mask = ()
    # [ours] start the audio scale/shift layers of every residual block at zero (official:
    # the default dense init), so that audio starts with no effect rather than a random one.
    config.model.zero_init_audio = False
    # How attention is computed (the same function): "einsum" (explicit logits and softmax in
    # float32), "dot_product" (jax.nn.dot_product_attention as XLA lowers it) or "cudnn" (the
    # same call with cuDNN's fused flash-attention kernel: NVIDIA GPUs with bf16 compute only).
    config.model.attention = "einsum"
    # Recompute each residual and attention block in the backward pass instead of storing its
    # activations: less memory for a larger batch, about one more forward of compute.
    config.model.remat = False
    # With remat: what a block may still save, a name of jax.checkpoint_policies
    # (dheads_jax.models.unet.REMAT_POLICIES, e.g. "dots_with_no_batch_dims_saveable" keeps
    # the matmul and conv results and recomputes the norms and activations); "" saves nothing
    # but the block's inputs.
    config.model.remat_policy = ""
    config.model.dtype = "float32"  # compute dtype; "bfloat16" for mixed precision
    config.model.param_dtype = "float32"

    # Diffusion (docs/method.md, section 3).
    config.diffusion = ml_collections.ConfigDict()
    config.diffusion.num_timesteps = 1000
    config.diffusion.schedule = "cosine"  # or "linear"
    config.diffusion.lambda_vlb = 1e-4
    config.diffusion.lambda_ls = 0.2
    # What the network's first three output channels predict: "eps" (official) or "v" [ours],
    # v = sqrt(abar) eps - sqrt(1 - abar) x_0, turned into eps before the losses and sampler.
    config.diffusion.parametrization = "eps"
    # What L_simple and the lip loss compare: "eps" (official) or "v" [ours, needs v
    # parametrization]: |v - v_hat|^2 keeps weight on the high noise levels where the mouth
    # can only come from the audio (eps - eps_hat = sqrt(abar) (v - v_hat) vanishes there).
    config.diffusion.mse_target = "eps"
    # [ours] The network sees x_t - sqrt(abar_t) x_Id and so predicts the difference from the
    # identity frame (dheads_jax/diffusion/gaussian.py, network_input): what does not move is
    # 0 whatever the photo, so a model trained on GRID's one studio wall copies other faces.
    # False (official) feeds x_t itself.
    config.diffusion.identity_relative = False
    # [ours] () (official) or a box (top, bottom, left, right in fractions of the frame) of
    # the identity frame filled with its own mean colour wherever the chain uses it, in
    # training, distillation and sampling alike (dheads_jax/imaging.py, flatten_box): the
    # shape of the photo's mouth is then neither shown to the network nor the base of
    # identity_relative's difference, so it cannot be copied and has to come from the audio;
    # the tone of the skin and lips stays.
    config.diffusion.identity_mask = ()

    # Optimisation (docs/method.md, section 4).
    config.optim = ml_collections.ConfigDict()
    config.optim.lr = 5e-5
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-8
    config.optim.decay_factor = 0.8
    config.optim.num_decays = 18
    config.optim.warmup_steps = 0
    config.optim.grad_clip = 0.0  # 0 disables clipping
    config.optim.ema_decay = 0.0  # 0 disables EMA (the official run had none)

    # Devices: data x fsdp; -1 takes the remaining devices.
    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1
    config.mesh.fsdp = 1

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 80  # global
    config.train.num_steps = 1_000_000
    config.train.log_every = 100
    config.train.checkpoint_every = 5_000
    config.train.keep_checkpoints = 3  # latest K
    config.train.milestone_every = 100_000  # also kept; 0 disables
    config.train.sample_every = 10_000  # PNG strips of sampled frames; 0 disables
    config.train.sample_frames = 8
    config.train.sample_steps = 50
    # [ours] Gaussian noise of std ~ U(0, motion_noise) on the motion frames while training,
    # so that the model learns to take its own imperfect frames; 0 (official) is off.
    config.train.motion_noise = 0.0
    # [ours] probability of replacing a training example's motion frames by the identity (as
    # at a video's first frame), so that the mouth has to come from the audio; 0 (official).
    config.train.motion_dropout = 0.0
    # [ours] appearance augmentations (dheads_jax/train/augment.py), one draw per example for
    # all its frames: mirror half the examples, colour changes of this strength, zoom up to
    # 1 + augment_zoom. Off in the official recipe; they let a model trained on a few faces
    # meet new photos.
    config.train.augment_flip = False
    config.train.augment_color = 0.0
    config.train.augment_zoom = 0.0
    # [ours] The first training step that flattens diffusion.identity_mask in the identity
    # frames (0: all of them): a run can first learn to copy the photo, then to make the mouth
    # from the audio. Distillation and sampling always flatten it.
    config.train.identity_mask_from_step = 0
    config.train.record_batches = False  # write the clip/frame ids of every batch to batches.jsonl

    # Sampling (docs/method.md, section 6).
    config.sampling = ml_collections.ConfigDict()
    config.sampling.steps = 100
    config.sampling.sampler = "ddpm"  # or "ddim", or "dpmpp" (DPM-Solver++(2M), ours)
    config.sampling.eta = 0.0  # DDIM only
    # [ours] classifier-free guidance on the audio: each step uses
    # pred(silence) + g (pred(audio) - pred(silence)); 1.0 (official) is off, > 1 exaggerates
    # what the audio does to the frame at the cost of a second network pass.
    config.sampling.audio_guidance = 1.0
    # [ours] () guides the whole frame; a (top, bottom, left, right) box in fractions of the
    # side guides only there (soft-edged), e.g. the mouth's, so that guidance strong enough to
    # open the mouth leaves the rest of the face as the conditional model draws it.
    config.sampling.guidance_region = ()
    # [ours] () guides every step; (lo, hi) guides only the steps whose timestep t has
    # lo <= t / T <= hi (T = diffusion.num_timesteps) and takes the plain conditional pass on
    # the others, which cost one network pass instead of two. On the bundled model the
    # mouth's opening comes from guiding the less noisy steps (docs/method.md, section 10).
    config.sampling.guidance_interval = ()
    # [ours] guide with the mean over the colour channels of pred(audio) - pred(silence),
    # the same for R, G and B: the guided mouth opens darker or lighter but its colour is
    # the conditional model's (full-colour guidance turned the inside of a mouth drawn on
    # skin unlike GRID's teal).
    config.sampling.guidance_grey = False
    # [ours] every frame of a video starts from the same noise draw (frame 0's), so that with
    # DDIM (eta 0) consecutive frames differ only through the audio and the motion frames;
    # False (official) draws fresh noise for every frame, which a small model shows as flicker.
    config.sampling.shared_noise = False
    config.sampling.stabilize = False
    config.sampling.stabilize_every = 15
    # [ours] the chain's timesteps (increasing, one per step) instead of the official
    # respacing of `steps`; () respaces. Distilled students (run_distill.py) set them.
    config.sampling.timesteps = ()

    # [ours] Progressive distillation of an export into a few-step student (run_distill.py,
    # dheads_jax/train/distill.py): halving rounds, each student DDIM step trained to match
    # two of its teacher's, the teacher's audio guidance distilled into one network pass.
    config.distill = ml_collections.ConfigDict()
    config.distill.student_steps = 4  # N; run_distill.py --steps
    # The first teacher's DDIM steps, N * 2^k with k >= 1; None: the one nearest (in log scale)
    # to the teacher export's own sampling.steps.
    config.distill.teacher_steps = config_dict.placeholder(int)
    config.distill.steps_per_round = 5_000
    config.distill.lr = 5e-5  # Adam (optim.b1, b2, eps, grad_clip), reset every round
    # "constant", or "linear": the lr falls linearly to 0 over every round.
    config.distill.lr_schedule = "constant"
    # The teacher's guidance scale that the student learns; None: the export's sampling.audio_guidance.
    config.distill.audio_guidance = config_dict.placeholder(float)
    # The DDIM eta the student export samples with by default. It is trained on the
    # deterministic chain (eta 0); eta > 0 adds fresh noise at each of its steps, which on
    # faces unlike the training data keeps frames from turning grainy (configs/bundled.py).
    config.distill.student_eta = 0.0
    return config
