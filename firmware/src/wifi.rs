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
use esp_idf_svc::wifi::{AccessPointConfiguration as Ap, AuthMethod, BlockingWifi};
use esp_idf_svc::wifi::{ClientConfiguration, Configuration, EspWifi, WifiEvent};

/// The running radio and (station mode) the rejoin handler; dropping it stops Wi-Fi.
pub type Wifi = (
    BlockingWifi<EspWifi<'static>>,
    Option<EspSubscription<'static, System>>,
);

/// Joins the network (hub mode; returns without waiting) or opens the access point at
/// 192.168.4.1 (standalone mode), as the core's `FirmwareConfig::wifi` says. build.rs has
/// checked every length.
pub fn start(
    modem: Modem<'static>,
    sysloop: &EspSystemEventLoop,
    nvs: EspDefaultNvsPartition,
    (ssid, password, access_point): (&str, &str, bool),
) -> Result<Wifi, EspError> {
    let mut wifi = BlockingWifi::wrap(
        EspWifi::new(modem, sysloop.clone(), Some(nvs))?,
        sysloop.clone(),
    )?;
    let invalid = |_| EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>();
    let (ssid, password) = (
        ssid.try_into().map_err(invalid)?,
        password.try_into().map_err(invalid)?,
    );
    if access_point {
        wifi.set_configuration(&Configuration::AccessPoint(Ap {
            ssid,
            password,
            auth_method: AuthMethod::WPA2Personal,
            // One more device than the core's client limit, so a sixth viewer is refused
            // with a reason instead of never joining the network.
            max_connections: espcam_proto::standalone::MAX_CLIENTS as u16 + 1,
            ..Default::default()
        }))?;
        wifi.start()?;
        wifi.wait_netif_up()?;
        let ip = wifi.wifi().ap_netif().get_ip_info()?.ip;
        log::info!("wifi: access point {ssid:?} up, clients connect to ws://{ip}/ws");
        return Ok((wifi, None));
    }
    // The weakest security accepted: open networks have no password.
    let auth_method = if password.is_empty() {
        AuthMethod::None
    } else {
        AuthMethod::WPA2Personal
    };
    wifi.set_configuration(&Configuration::Client(ClientConfiguration {
        ssid,
        password,
        auth_method,
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
    log::info!("wifi: joining {ssid:?}");
    Ok((wifi, Some(rejoin)))
}

/// Signal strength of the joined network, dBm; None in AP mode or while disconnected
/// (the driver call fails then; esp-idf-svc's `get_rssi` would hide that as 0 dBm).
pub fn rssi() -> Option<i32> {
    let mut rssi = 0;
    esp!(unsafe { sys::esp_wifi_sta_get_rssi(&mut rssi) }).ok()?;
    Some(rssi)
}
