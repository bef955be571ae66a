//! The health seam: free heap, free PSRAM and RSSI for the core's telemetry (uptime the core
//! counts itself), and the reboot the core may ask for. Must never decide when to reboot.

use esp_idf_svc::sys;
use espcam_camera::Health;

use crate::wifi::Wifi;

/// The numbers only the platform knows, right now.
pub fn read(wifi: &Wifi) -> Health {
    let free = |caps| u32::try_from(unsafe { sys::heap_caps_get_free_size(caps) });
    Health {
        heap_free: free(sys::MALLOC_CAP_INTERNAL).unwrap_or(u32::MAX),
        psram_free: free(sys::MALLOC_CAP_SPIRAM).unwrap_or(u32::MAX),
        rssi: wifi.rssi(),
    }
}

/// Restarts the chip.
pub fn reboot() -> ! {
    log::warn!("rebooting");
    esp_idf_svc::hal::reset::restart()
}
