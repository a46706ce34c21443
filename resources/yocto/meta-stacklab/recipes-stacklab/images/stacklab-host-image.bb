SUMMARY = "Stacklab host: a qemuarm64 system that carries QEMU and a nested x86-64 guest"
DESCRIPTION = "The seed stack in one build: a qemuarm64 image with qemu-system-x86_64, \
stacklab-agent and stacklab-guest-image (built for qemux86-64 in the 'x86' multiconfig) \
installed under /var/lib/virt/images/."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

inherit image-hostname vm-image-features vm-guest-images-install

COMPATIBLE_MACHINE = "qemuarm64"

VM_IMAGE_HOSTNAME = "stacklab-host"

IMAGE_FEATURES += "qemu-virtualization benchmark"
IMAGE_FEATURES += "allow-empty-password empty-root-password allow-root-login"

VM_GUEST_IMAGES ?= "stacklab-guest-image"
VM_GUEST_IMAGE_stacklab-guest-image ?= "x86-guest.qcow2"
VM_GUEST_MC_stacklab-guest-image ?= "x86"
VM_GUEST_MACHINE_stacklab-guest-image ?= "qemux86-64"
VM_GUEST_MEMORY_stacklab-guest-image ?= "256"

# The nested guest's RAM, QEMU's own and the TCG translation cache have to fit.
QB_MEM = "-m 1024"
# Room to write the nested guest's overlay next to its installed image.
IMAGE_ROOTFS_EXTRA_SPACE = "524288"
