SUMMARY = "Stacklab builder: a qemuarm64 system that can run bitbake itself"
DESCRIPTION = "The seed author's trick: a Yocto image that builds Yocto images. Carries \
the host tools bitbake checks for (HOSTTOOLS in bitbake.conf), a native toolchain, \
python3, git, the en_US.UTF-8 locale bitbake insists on, an unprivileged 'builder' user \
(bitbake refuses to run as root) and a large root filesystem to build in."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

inherit image-hostname extrausers

COMPATIBLE_MACHINE = "qemuarm64"

VM_IMAGE_HOSTNAME = "stacklab-builder"

# tools-sdk: gcc, g++, make, autotools, perl, ... (packagegroup-core-sdk);
# dev-pkgs: the headers of everything installed, for the native builds bitbake runs.
IMAGE_FEATURES += "tools-sdk dev-pkgs ssh-server-dropbear"
IMAGE_FEATURES += "allow-empty-password empty-root-password allow-root-login"

# What bitbake.conf's HOSTTOOLS needs beyond the toolchain, plus the python modules
# bitbake imports. Coreutils/findutils/... replace busybox's reduced applets.
IMAGE_INSTALL:append = " \
    bash coreutils util-linux findutils diffutils grep sed gawk which file \
    tar gzip bzip2 xz zstd lz4 cpio unzip patch chrpath diffstat \
    git perl perl-modules python3 python3-modules python3-git python3-jinja2 \
    wget rpcsvc-proto texinfo socat iputils-ping procps less screen \
    e2fsprogs-mke2fs e2fsprogs-resize2fs \
"

# bitbake exits unless en_US.UTF-8 exists (bb.utils.check_system_locale).
IMAGE_LINGUAS = "en-us"

# bitbake refuses root: build as "builder" (no password; log in as root and "su - builder").
EXTRA_USERS_PARAMS = "useradd -m -s /bin/bash -p '' builder;"

# A poky build of core-image-minimal needs tens of GB. The ext4 image is sparse, so the
# space costs nothing until it is used; one inode per 16 KiB instead of oe-core's 4 KiB
# keeps mkfs from writing GBs of inode tables for it.
IMAGE_ROOTFS_EXTRA_SPACE = "33554432"
EXTRA_IMAGECMD:ext4 = "-i 16384"
IMAGE_FSTYPES = "ext4"

# bitbake with BB_NUMBER_THREADS=4 wants memory; runqemu and Stacklab read these.
QB_MEM = "-m 4096"
QB_SMP = "-smp 4"
