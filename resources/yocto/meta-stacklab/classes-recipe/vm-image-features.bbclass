# IMAGE_FEATURES for Stacklab stack images. Use them as
#   IMAGE_FEATURES += "qemu-virtualization benchmark"
#
# qemu-virtualization: QEMU to run a nested guest, plus stacklab-agent, which starts the
#   nested guests installed under /var/lib/virt/images/ (see vm-guest-images-install).
#   oe-core's target qemu recipe splits each emulator into its own package named after the
#   binary with '_' turned into '-': qemu-system-x86_64 is in "qemu-system-x86-64"
#   (split_qemu_packages in qemu.inc). qemu-img lives in qemu-common, which every
#   qemu-system-* package depends on. No vhost/tap kernel modules: the nested guest runs
#   under TCG with user-mode networking, which needs neither.
# benchmark: tools to see what each level of emulation costs. The oe-core ones always;
#   fio, iperf3 and htop only when meta-oe (collection "openembedded-layer") is in
#   BBLAYERS, so the feature works in a workspace without meta-openembedded.

VM_NESTED_QEMU_PACKAGES ?= "qemu-system-x86-64"

FEATURE_PACKAGES_qemu-virtualization = "${VM_NESTED_QEMU_PACKAGES} stacklab-agent"

FEATURE_PACKAGES_benchmark = "\
    stress-ng \
    screen \
    strace \
    ${@bb.utils.contains('BBFILE_COLLECTIONS', 'openembedded-layer', 'fio iperf3 htop', '', d)} \
"

IMAGE_FEATURES[validitems] += "qemu-virtualization benchmark"
