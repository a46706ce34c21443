SUMMARY = "Stacklab guest: a small system to run nested inside another Stacklab guest"
DESCRIPTION = "core-image-minimal for a QEMU machine (qemux86-64 in the seed stack), \
deployed as ext4 for runqemu and as qcow2 for a parent guest to boot."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

inherit image-hostname vm-guest-image

# Any QEMU machine of oe-core/meta-yocto-bsp; the seed stack builds it for qemux86-64
# through the "x86" multiconfig of a stacklab-host-image build.
COMPATIBLE_MACHINE = "qemuall"

VM_IMAGE_HOSTNAME = "stacklab-guest"

# Log in as root with no password, the scarthgap-and-later spelling of the old
# debug-tweaks (which walnascar removed). Also set by the workspace's local.conf; kept
# here so the image stays usable when built from another configuration.
IMAGE_FEATURES += "allow-empty-password empty-root-password allow-root-login"
