SUMMARY = "Stacklab Raspberry Pi image: an SD card image for a 64-bit Pi (meta-raspberrypi)"
DESCRIPTION = "core-image-minimal for raspberrypi3-64 or raspberrypi4-64, deployed as a \
bzip2-compressed wic SD card image with its bmap, for bmaptool/rpi-imager or Stacklab's \
emulated Pi."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

inherit image-hostname

# meta-raspberrypi puts "rpi" in MACHINEOVERRIDES for all of its machines; outside a
# workspace with that layer this recipe is skipped, not broken.
COMPATIBLE_MACHINE = "^rpi$"

VM_IMAGE_HOSTNAME = "stacklab-pi"

IMAGE_FEATURES += "allow-empty-password empty-root-password allow-root-login"

# Only the SD card image: the tar.bz2 and ext3 meta-raspberrypi also makes by default are
# not used by Stacklab. The .wic.bmap lets bmaptool skip the empty blocks when writing a card.
IMAGE_FSTYPES = "wic.bz2 wic.bmap"

# The serial console: ENABLE_UART = "1" must be set where the boot-files recipes see it,
# i.e. in local.conf (or a machine/distro config), NOT here. A variable set in an image
# recipe only exists in that recipe's datastore, while meta-raspberrypi reads ENABLE_UART in
# rpi-config (enable_uart=1 in config.txt) and rpi-cmdline (console=serial0,115200 in
# cmdline.txt). Stacklab's workspace generator writes it into local.conf for Pi machines;
# this check makes a build without it say so instead of giving a silent console.
python () {
    if 'rpi' in (d.getVar('MACHINEOVERRIDES') or '').split(':') and d.getVar('ENABLE_UART') != '1':
        bb.warn('stacklab-rpi-image: ENABLE_UART is not "1" in local.conf, so the Pi will have no serial console')
}
