//! The Wi-Fi seam: station mode (hub topology) or access point (standalone topology), as
//! `cfg.toml` says.
//!
//! Started before the camera, so the radio's calibration current peak never coincides with
//! the sensor's power-up (a classic brown-out on USB-powered boards). Station mode rejoins
//! on every disconnect (the ESP-IDF station example's idiom); the hub links on top reconnect
//! on the core's schedule, and an outage no rejoin cures ends in the core's network-watchdog
//! restart. Must never decide anything else.

use esp_idf_svc::eventloop::{EspSubscription, EspSystemEventLoop, System};
use esp_idf_svc::hal::modem::Modem;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::sys::{self, esp, EspError};
use esp_idf_svc::wifi::{
    AccessPointConfiguration, AuthMethod, BlockingWifi, ClientConfiguration, Configuration,
    EspWifi, WifiEvent,
};

use crate::config;

/// The running radio; dropping it stops Wi-Fi.
pub struct Wifi {
    _driver: BlockingWifi<EspWifi<'static>>,
    /// Keeps the rejoin-on-disconnect handler registered (station mode).
    _rejoin: Option<EspSubscription<'static, System>>,
}

/// Joins `wifi_ssid` (hub mode; returns without waiting) or opens the access point `ap_ssid`
/// at 192.168.4.1 (standalone mode).
pub fn start(
    modem: Modem<'static>,
    sysloop: &EspSystemEventLoop,
    nvs: EspDefaultNvsPartition,
) -> Result<Wifi, EspError> {
    let mut wifi = BlockingWifi::wrap(
        EspWifi::new(modem, sysloop.clone(), Some(nvs))?,
        sysloop.clone(),
    )?;
    if config::standalone() {
        wifi.set_configuration(&Configuration::AccessPoint(AccessPointConfiguration {
            ssid: config::AP_SSID.try_into().map_err(invalid)?,
            password: config::AP_PASSWORD.try_into().map_err(invalid)?,
            auth_method: AuthMethod::WPA2Personal,
            // One more device than the core's client limit, so a sixth viewer is refused
            // with a reason instead of never joining the network.
            max_connections: espcam_proto::standalone::MAX_CLIENTS as u16 + 1,
            ..Default::default()
        }))?;
        wifi.start()?;
        wifi.wait_netif_up()?;
        let ip = wifi.wifi().ap_netif().get_ip_info()?.ip;
        log::info!(
            "wifi: access point {:?} up, clients connect to ws://{ip}/ws",
            config::AP_SSID
        );
        return Ok(Wifi {
            _driver: wifi,
            _rejoin: None,
        });
    }
    let password = config::WIFI_PASSWORD;
    wifi.set_configuration(&Configuration::Client(ClientConfiguration {
        ssid: config::WIFI_SSID.try_into().map_err(invalid)?,
        password: password.try_into().map_err(invalid)?,
        // The weakest security accepted: open networks have no password.
        auth_method: if password.is_empty() {
            AuthMethod::None
        } else {
            AuthMethod::WPA2Personal
        },
        ..Default::default()
    }))?;
    wifi.start()?;
    // Modem sleep adds up to a beacon interval (~100 ms) to every frame.
    esp!(unsafe { sys::esp_wifi_set_ps(sys::wifi_ps_type_t_WIFI_PS_NONE) })?;
    let rejoin = sysloop.subscribe::<WifiEvent, _>(|event| {
        if let WifiEvent::StaDisconnected(_) = event {
            // Non-blocking: the driver scans and reports the outcome as another event.
            unsafe { sys::esp_wifi_connect() };
        }
    })?;
    wifi.wifi_mut().connect()?;
    log::info!("wifi: joining {:?}", config::WIFI_SSID);
    Ok(Wifi {
        _driver: wifi,
        _rejoin: Some(rejoin),
    })
}

/// Signal strength of the joined network, dBm; None in AP mode or while disconnected
/// (the driver call fails then; esp-idf-svc's `get_rssi` would hide that as 0 dBm).
pub fn rssi() -> Option<i16> {
    let mut rssi = 0;
    esp!(unsafe { sys::esp_wifi_sta_get_rssi(&mut rssi) }).ok()?;
    i16::try_from(rssi).ok()
}

/// build.rs has checked SSID and password lengths; this only guards the conversions.
fn invalid<E>(_: E) -> EspError {
    EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>()
}
