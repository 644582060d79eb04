//! Every reference service's description advertises as a valid
//! `ServiceAdvertisement` (PROFILE.md, discovery).

use serde_json::json;
use specwire_protocol::discovery::{self, Message};
use specwire_protocol::JsonProtocol;
use specwire_runtime::task::ServiceDescription;

fn advertisement(description: &ServiceDescription) -> serde_json::Value {
    json!({
        "discoveryType": "ServiceAdvertisement",
        "serviceId": format!("{}-test-001", description.name),
        "serviceName": description.name,
        "serviceVersion": description.version,
        "endpoint": "ws://127.0.0.1:8080",
        "capabilities": serde_json::to_value(description.capabilities()).unwrap(),
        "status": "Online",
        "load": 0.0,
        "timestamp": "2025-07-02T11:45:05Z"
    })
}

#[test]
fn every_reference_service_advertises_validly() {
    let services = specwire_services::reference_services();
    assert_eq!(services.len(), 2);
    for service in services {
        let description = service.description();
        let value = advertisement(description);
        let index = discovery::Message::recognise(&value, None)
            .unwrap_or_else(|error| panic!("{}: {error}\n{value:#}", description.name));
        assert_eq!(discovery::MESSAGES[index].name, "ServiceAdvertisement");
        let Ok(Message::ServiceAdvertisement(decoded)) = Message::decode(value) else {
            panic!("{} does not decode", description.name);
        };
        assert_eq!(decoded.capabilities, description.capabilities());
        assert_eq!(decoded.capabilities.len(), description.operations.len());
    }
}

#[test]
fn the_image_service_advertises_the_settings_the_brief_names() {
    let description = specwire_services::ImageProcessingService::new();
    let capabilities = serde_json::to_value(
        specwire_runtime::task::TaskHandler::description(&description).capabilities(),
    )
    .unwrap();
    assert_eq!(
        capabilities,
        json!([
            {"key": "resizeImage", "settings": [
                {"string": "inputPath"}, {"string": "outputPath"}, {"int": "width"},
                {"int": "height"}, {"string": "filter"}, {"bool": "keepAspectRatio"}]},
            {"key": "applyFilter", "settings": [
                {"string": "inputPath"}, {"string": "outputPath"}, {"string": "name"},
                {"float": "size"}]},
            {"key": "convertFormat", "settings": [
                {"string": "inputPath"}, {"string": "outputPath"}, {"string": "format"},
                {"int": "quality"}]}
        ])
    );
}
