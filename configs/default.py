"""Defaults every preset patches: DCGAN on CIFAR-10 at 32x32, Adam(2e-4, b1=0.5)."""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.task = "gan"  # gan | classifier (configs/classifier.py)
  config.seed = 0
  # DCGAN's 4x4 / stride-2 convolutions: auto (XLA:CPU forms of aigc_jax/models/cpu_convs.py on the
  # CPU backend, XLA's own elsewhere) | xla | cpu. Same parameters and values either way.
  config.conv_impl = "auto"

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.z_dim = 100
  config.model.g_features = 64
  config.model.d_features = 64
  # Beyond DCGAN (configs/sngan.py): dcgan | sngan (ResNet, spectral norm) | biggan (sngan + BigGAN options).
  config.model.cond_mode = "none"  # none | projection | acgan (sngan/biggan; G gets conditional BatchNorm)
  config.model.num_classes = 10  # used when cond_mode is not none
  config.model.class_embed_dim = 0  # dcgan, conditional: class embedding of this size concatenated to z
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
  config.data.pad = False  # instead, zero-pad smaller images evenly (MNIST 28 -> 32, as LeNet and DCGAN ports)
  config.data.shuffle_buffer = 20_000
  config.data.prefetch_batches = 4
  config.data.fraction = 1.0  # train on a deterministic subset of this fraction of the images

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global, over all devices and processes
  config.train.num_steps = 50_000
  config.train.parallel = "pmap"  # pmap | jit (NamedSharding data-parallel mesh)
  config.train.loss = "non_saturating"  # non_saturating | minimax | hinge | wgan | lsgan | relativistic (R3GAN)
  config.train.log_every = 100
  config.train.sample_every = 1_000
  config.train.checkpoint_every = 2_000
  config.train.keep_checkpoints = 3
  config.train.num_sample_images = 64
  config.train.d_steps = 1  # discriminator updates per generator update
  config.train.gp_weight = 0.0  # WGAN-GP gradient penalty weight (use with loss=wgan)
  config.train.r1_gamma = 0.0  # R1 penalty gamma on real images; 0 disables
  config.train.r1_every = 1  # lazy R1: apply every k steps, scaled by k
  config.train.r2_gamma = 0.0  # zero-centred R2 penalty gamma on generated images (R3GAN: = r1_gamma); 0 disables
  config.train.acgan_weight = 1.0  # cond_mode=acgan: weight of the auxiliary classification loss
  config.train.ortho_weight = 0.0  # orthogonal regularisation of G's weights (BigGAN: 1e-4)
  config.train.ema_decay = 0.0  # moving average of G's weights, used for samples when > 0 (e.g. 0.999)
  config.train.ema_start = 0  # EMA warm-up: copy the weights until this step

  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ""  # DiffAugment for D's inputs: comma-separated color,translation,cutout
  # Adaptive augmentation (StyleGAN2-ADA): the policy's transforms each applied with a probability p that
  # moves towards E[sign D(real)] = ada_target (0.6 in the paper; 0 disables ADA and p is always 1).
  config.augment.ada_target = 0.0
  config.augment.ada_interval = 4  # steps between adjustments of p
  config.augment.ada_kimg = 500.0  # thousands of images for p to move by 1

  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.schedule = "constant"  # constant | cosine | linear (with warmup_steps)
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0  # global-norm clipping; 0 disables

  # Sample quality (aigc_jax/evaluation.py): every `every` training steps (0 = off), --mode=eval.
  config.eval = ml_collections.ConfigDict()
  config.eval.every = 0
  config.eval.num_samples = 10_000
  config.eval.batch_size = 250  # generator and extractor batch
  config.eval.extractor = "classifier"  # classifier (in-domain, classifier_workdir) | inception (inception_weights)
  config.eval.classifier_workdir = ""  # a run of configs/classifier.py on the same kind of images
  config.eval.inception_weights = ""  # pytorch-fid's pt_inception-2015-12-05-6726825d.pth (README)
  config.eval.metrics = "fid,kid,prdc,is,classes"  # classes: classifier only
  config.eval.real_split = ""  # empty: data.split
  config.eval.real_limit = 0  # real images for the statistics; 0: the whole split
  config.eval.real_features = 10_000  # real feature rows kept for KID and PRDC
  config.eval.seed = 1  # latents of the evaluated samples; the training RNG is never touched
  config.eval.kid_subsets = 100
  config.eval.kid_subset_size = 1_000
  config.eval.nearest_k = 5  # precision/recall/density/coverage
  config.eval.confidence = 0.9  # 'confident': samples whose top class probability reaches this
  config.eval.cache_dir = ""  # real statistics; empty: $XDG_CACHE_HOME or ~/.cache, /aigc_jax/stats

  # Linear probe of discriminator features (aigc_jax/probe.py, --mode=probe).
  config.probe = ml_collections.ConfigDict()
  config.probe.train_split = "train[:80%]"  # labelled images; in-memory sources slice their one split
  config.probe.test_split = "train[80%:]"
  config.probe.val_fraction = 0.2  # of the train split, to choose C
  config.probe.cs = "0.0001,0.001,0.01,0.1,1,10"  # inverse L2 strengths tried
  config.probe.pool = 4  # each discriminator layer is max-pooled to pool x pool
  config.probe.limit = 10_000  # at most this many train images
  config.probe.seed = 1  # the randomly initialised discriminator

  # Multi-host runs; a single process needs none of it. Unset values fall back to $AIGC_COORDINATOR,
  # $AIGC_NUM_PROCESSES and $AIGC_PROCESS_ID; Cloud TPU pods are detected without any of them.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.coordinator = ""  # HOST:PORT of process 0
  config.distributed.num_processes = 0
  config.distributed.process_id = -1
  config.distributed.auto = False  # let JAX detect the cluster (SLURM, Open MPI, Kubernetes)
  return config
