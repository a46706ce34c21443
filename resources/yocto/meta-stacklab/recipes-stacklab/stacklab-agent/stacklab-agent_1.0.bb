SUMMARY = "Starts the nested VM guests installed under /var/lib/virt/images"
DESCRIPTION = "A POSIX sh script (busybox ash is enough) that lists, starts, stops and \
reports the nested guests described by the launch manifests vm-guest-images-install \
writes, with each guest's console on a virtio-serial port of the parent VM."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

# Unpacked into ${BP}, which is where the default S points in every release this layer
# supports (scarthgap unpacks to WORKDIR; styhead and later to UNPACKDIR and then move
# ${BP} into place). S = "${WORKDIR}" would be refused from styhead on.
SRC_URI = "file://stacklab-agent;subdir=${BP}"

inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install () {
	install -d ${D}${bindir} ${D}${localstatedir}/lib/virt/images ${D}${localstatedir}/lib/virt/overlays
	install -m 0755 ${S}/stacklab-agent ${D}${bindir}/stacklab-agent
}

FILES:${PN} += "${localstatedir}/lib/virt"
