import {
  AssignMailbox,
  CreateMailboxForm,
  DomainSetup,
  MailboxDetail,
  MailboxList,
  MessageDetail,
  MessageLog,
  SendMailForm,
  SuppressionList,
  WebhookDeliveries,
  WebhookList,
  samples,
} from "@orgmail/widgets";

/** `/console/?preview`: every widget with sample data and no calls, as an embedding host would see it. */
export function PreviewGallery() {
  return (
    <div className="console">
      <header className="console__header">
        <h1 className="console__title">orgmail widgets — preview</h1>
        <nav className="console__nav" aria-label="Console">
          <a href="./">Open the console</a>
        </nav>
      </header>
      <main>
        <div className="console__grid console__grid--wide-right">
          <CreateMailboxForm preview />
          <MailboxList preview />
        </div>
        <div className="console__grid">
          <MailboxDetail preview members={samples.sampleMembers} />
          <AssignMailbox preview members={samples.sampleMembers} />
        </div>
        <div className="console__grid console__grid--wide-right">
          <SendMailForm preview defaultFrom="Example <hello@example.com>" />
          <MessageLog preview />
        </div>
        {/* The receipt: its timeline has a deferral before the delivery. */}
        <MessageDetail preview id={samples.sampleMessages[0]!.id} />
        <SuppressionList preview />
        <WebhookList preview />
        <WebhookDeliveries preview webhookId={samples.sampleWebhooks[0]!.id} />
        <DomainSetup preview />
      </main>
    </div>
  );
}
