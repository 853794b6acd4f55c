import { useState } from "react";
import { Console } from "./Console";
import { KeyForm } from "./KeyForm";
import { PreviewGallery } from "./PreviewGallery";
import { storeApiKey, storedApiKey } from "./apiKey";

export function App() {
  const [apiKey, setApiKey] = useState<string | null>(storedApiKey);
  const preview = new URLSearchParams(window.location.search).has("preview");

  if (preview) return <PreviewGallery />;
  if (apiKey === null) {
    return (
      <KeyForm
        onKey={(key) => {
          storeApiKey(key);
          setApiKey(key);
        }}
      />
    );
  }
  return (
    <Console
      apiKey={apiKey}
      onForget={() => {
        storeApiKey(null);
        setApiKey(null);
      }}
    />
  );
}
