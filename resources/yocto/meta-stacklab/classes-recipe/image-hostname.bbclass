# Give an image its own hostname (VM_IMAGE_HOSTNAME), so each layer of a stack is
# recognisable at its prompt: "root@stacklab-host" runs "root@stacklab-guest".
#
# base-files writes /etc/hostname from ${MACHINE} at package time; an image-level
# postprocess step lets several images built for the same MACHINE differ.
VM_IMAGE_HOSTNAME ??= ""

ROOTFS_POSTPROCESS_COMMAND += "stacklab_set_hostname "

stacklab_set_hostname () {
	name="${VM_IMAGE_HOSTNAME}"
	[ -n "$name" ] || return 0
	case "$name" in
	*[!A-Za-z0-9-]* | -*)
		bbfatal "VM_IMAGE_HOSTNAME '$name' is not a valid hostname (letters, digits and '-')"
		;;
	esac
	old=""
	[ ! -f ${IMAGE_ROOTFS}${sysconfdir}/hostname ] || old=$(cat ${IMAGE_ROOTFS}${sysconfdir}/hostname)
	echo "$name" > ${IMAGE_ROOTFS}${sysconfdir}/hostname
	# base-files' /etc/hosts maps 127.0.1.1 to the old name; keep that mapping right.
	if [ -n "$old" ] && [ -f ${IMAGE_ROOTFS}${sysconfdir}/hosts ]; then
		sed -i -e "s/\([[:space:]]\)$old\$/\1$name/" ${IMAGE_ROOTFS}${sysconfdir}/hosts
	fi
}
stacklab_set_hostname[vardeps] += "VM_IMAGE_HOSTNAME"
