# An image meant to run as a VM guest under QEMU: also deploy it as a qcow2 disk.
#
# "ext4.qcow2" is the ext4 image passed through oe-core's qcow2 conversion
# (CONVERSION_CMD:qcow2 in image_types.bbclass, which runs qemu-img from
# qemu-system-native), so the deploy dir gets <image>.rootfs.ext4.qcow2 next to the
# plain ext4 that runqemu boots. qcow2 is what a parent guest boots nested guests from:
# it grows on demand and can take a backing-file overlay, so the installed image is never
# written.
IMAGE_FSTYPES += "ext4 ext4.qcow2"
