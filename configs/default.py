"""Defaults every preset patches: DCGAN on CIFAR-10 at 32x32, Adam(2e-4, b1=0.5)."""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.task = "gan"  # gan | classifier (configs/classifier.py)
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.z_dim = 100
  config.model.g_features = 64
  config.model.d_features = 64
  config.model.upconv_impl = "auto"  # transposed-conv formulation: auto (fast on CPU), xla, fast
  # Beyond DCGAN (configs/sngan.py): dcgan | sngan (ResNet, spectral norm) | biggan (sngan + BigGAN options).
  config.model.cond_mode = "none"  # none | projection | acgan (sngan/biggan; G gets conditional BatchNorm)
  config.model.num_classes = 10  # used when cond_mode is not none
  config.model.spectral_norm = True  # sngan/biggan discriminator layers
  config.model.attention_res = 0  # sngan/biggan: self-attention at this resolution (0: none)
  config.model.shared_dim = 128  # biggan: shared class embedding size
  config.model.dtype = "float32"  # float32 | bfloat16 (activations; parameters and optimizer stay float32)

  config.data = ml_collections.ConfigDict()
  config.data.source = "tfds"  # tfds | digits | files
  config.data.name = "cifar10"  # TFDS name
  config.data.split = "train"
  config.data.data_dir = ""  # TFDS data dir; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.path = ""  # files source: a folder of images, an .npz, or IDX files
  config.data.resolution = 32
  config.data.channels = 3
  config.data.resize = True  # resize images of another size to resolution x resolution
  config.data.shuffle_buffer = 20_000
  config.data.prefetch_batches = 4
  config.data.fraction = 1.0  # train on a deterministic subset of this fraction of the images

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global, over all devices and processes
  config.train.num_steps = 50_000
  config.train.parallel = "pmap"  # pmap | jit (NamedSharding data-parallel mesh)
  config.train.loss = "non_saturating"  # non_saturating | minimax | hinge | wgan | lsgan
  config.train.log_every = 100
  config.train.sample_every = 1_000
  config.train.checkpoint_every = 2_000
  config.train.keep_checkpoints = 3
  config.train.num_sample_images = 64
  config.train.d_steps = 1  # discriminator updates per generator update
  config.train.gp_weight = 0.0  # WGAN-GP gradient penalty weight (use with loss=wgan)
  config.train.r1_gamma = 0.0  # R1 penalty gamma on real images; 0 disables
  config.train.r1_every = 1  # lazy R1: apply every k steps, scaled by k
  config.train.acgan_weight = 1.0  # cond_mode=acgan: weight of the auxiliary classification loss
  config.train.ortho_weight = 0.0  # orthogonal regularisation of G's weights (BigGAN: 1e-4)
  config.train.ema_decay = 0.0  # moving average of G's weights, used for samples when > 0 (e.g. 0.999)
  config.train.ema_start = 0  # EMA warm-up: copy the weights until this step

  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ""  # DiffAugment for D's inputs: comma-separated color,translation,cutout

  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.schedule = "constant"  # constant | cosine | linear (with warmup_steps)
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0  # global-norm clipping; 0 disables

  # Multi-host runs; a single process needs none of it. Unset values fall back to $AIGC_COORDINATOR,
  # $AIGC_NUM_PROCESSES and $AIGC_PROCESS_ID; Cloud TPU pods are detected without any of them.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.coordinator = ""  # HOST:PORT of process 0
  config.distributed.num_processes = 0
  config.distributed.process_id = -1
  config.distributed.auto = False  # let JAX detect the cluster (SLURM, Open MPI, Kubernetes)
  return config
