//! The Wi-Fi seam: station mode (hub topology) or access point (standalone topology).
//!
//! Started before the camera, so the radio's calibration current peak never coincides with
//! the sensor's power-up (a classic brown-out on USB-powered boards). Station mode asks the
//! driver to reconnect on every disconnect, the ESP-IDF station example's idiom; the hub
//! links on top reconnect on the core's schedule. Must never decide anything else.

use esp_idf_svc::eventloop::{EspSubscription, EspSystemEventLoop, System};
use esp_idf_svc::hal::modem::Modem;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::sys::{self, esp, EspError};
use esp_idf_svc::wifi::{
    AccessPointConfiguration, AuthMethod, BlockingWifi, ClientConfiguration, Configuration,
    EspWifi, WifiEvent,
};

/// The running radio.
pub struct Wifi {
    wifi: BlockingWifi<EspWifi<'static>>,
    /// Keeps the reconnect-on-disconnect handler registered (station mode only).
    _reconnect: Option<EspSubscription<'static, System>>,
}

fn too_long() -> EspError {
    // build.rs has already checked the lengths; this only guards the conversion.
    EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>()
}

fn driver(
    modem: Modem<'static>,
    sysloop: &EspSystemEventLoop,
    nvs: EspDefaultNvsPartition,
) -> Result<BlockingWifi<EspWifi<'static>>, EspError> {
    BlockingWifi::wrap(
        EspWifi::new(modem, sysloop.clone(), Some(nvs))?,
        sysloop.clone(),
    )
}

/// Joins `ssid` and keeps rejoining it; returns without waiting for the connection.
pub fn station(
    modem: Modem<'static>,
    sysloop: &EspSystemEventLoop,
    nvs: EspDefaultNvsPartition,
    ssid: &str,
    password: &str,
) -> Result<Wifi, EspError> {
    let mut wifi = driver(modem, sysloop, nvs)?;
    wifi.set_configuration(&Configuration::Client(ClientConfiguration {
        ssid: ssid.try_into().map_err(|_| too_long())?,
        password: password.try_into().map_err(|_| too_long())?,
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
    let reconnect = sysloop.subscribe::<WifiEvent, _>(|event| {
        if let WifiEvent::StaDisconnected(_) = event {
            // Non-blocking: the driver scans and reports the outcome as another event.
            unsafe { sys::esp_wifi_connect() };
        }
    })?;
    wifi.wifi_mut().connect()?;
    log::info!("wifi: joining {ssid:?}");
    Ok(Wifi {
        wifi,
        _reconnect: Some(reconnect),
    })
}

/// Opens the access point `ssid` (WPA2, `password`) at 192.168.4.1.
pub fn access_point(
    modem: Modem<'static>,
    sysloop: &EspSystemEventLoop,
    nvs: EspDefaultNvsPartition,
    ssid: &str,
    password: &str,
) -> Result<Wifi, EspError> {
    let mut wifi = driver(modem, sysloop, nvs)?;
    wifi.set_configuration(&Configuration::AccessPoint(AccessPointConfiguration {
        ssid: ssid.try_into().map_err(|_| too_long())?,
        password: password.try_into().map_err(|_| too_long())?,
        auth_method: AuthMethod::WPA2Personal,
        max_connections: espcam_proto::standalone::MAX_CLIENTS as u16,
        ..Default::default()
    }))?;
    wifi.start()?;
    wifi.wait_netif_up()?;
    let ip = wifi.wifi().ap_netif().get_ip_info()?.ip;
    log::info!("wifi: access point {ssid:?} up, clients connect to ws://{ip}/ws");
    Ok(Wifi {
        wifi,
        _reconnect: None,
    })
}

impl Wifi {
    /// Signal strength of the joined network, dBm; None in AP mode or while disconnected.
    pub fn rssi(&self) -> Option<i16> {
        if self._reconnect.is_none() {
            return None;
        }
        let rssi = self.wifi.wifi().get_rssi().ok()?;
        i16::try_from(rssi).ok()
    }
}
