"""Dialogs: app preferences (providers, defaults, appearance, data), per-chat settings, About."""

from __future__ import annotations

from importlib import metadata

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_chat import APP_NAME, __version__, secrets
from desktop_chat.core.types import MemoryPolicy, PolicyKind
from desktop_chat.errors import UserFacingError
from desktop_chat.gui.workers import run_job
from desktop_chat.llm.client import ChatClient, ProviderConfig
from desktop_chat.services import encryption
from desktop_chat.services.chat import ChatService
from desktop_chat.services.workspace import Workspace

POLICY_LABELS = {
    PolicyKind.TOKEN_BUDGET: "As much recent history as fits (token budget)",
    PolicyKind.LAST_N: "Only the last N messages",
    PolicyKind.SUMMARY: "Summary of older messages + recent ones",
}
BUNDLED = (
    "PySide6-Essentials",
    "openai",
    "peewee",
    "keyring",
    "tiktoken",
    "platformdirs",
    "markdown-it-py",
    "Pygments",
    "httpx",
)


class SettingsDialog(QDialog):
    """Preferences: the provider (URL, key, test), defaults for new chats, appearance, data."""

    def __init__(
        self, workspace: Workspace, parent: QWidget | None = None, focus: str | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(560)
        self.workspace = workspace
        tabs = QTabWidget(self)
        tabs.addTab(self._provider_page(), "Provider")
        tabs.addTab(self._defaults_page(), "New chats")
        tabs.addTab(self._appearance_page(), "Appearance")
        tabs.addTab(self._data_page(), "Data")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)
        if focus == "key":
            self.api_key.setFocus()
        elif focus == "local":
            self.base_url.setText(self.base_url.text() or "http://localhost:11434/v1")
            self.base_url.setFocus()

    def _provider_page(self) -> QWidget:
        provider = self.workspace.settings.provider()
        page = QWidget()
        form = QFormLayout(page)
        self.base_url = QLineEdit(provider.base_url or "")
        self.base_url.setObjectName("baseUrl")
        self.base_url.setPlaceholderText("https://api.openai.com/v1 (leave empty for OpenAI)")
        self.api_key = QLineEdit()
        self.api_key.setObjectName("apiKey")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        try:
            stored = secrets.get_api_key(provider.name)
        except UserFacingError:
            stored = None
        self.api_key.setPlaceholderText(
            "A key is stored in the OS keyring" if stored else "sk-… (stored in the OS keyring)"
        )
        self.model = QComboBox()
        self.model.setObjectName("defaultModel")
        self.model.setEditable(True)
        self.model.addItems(
            ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini"]
        )
        self.model.setCurrentText(provider.default_model)
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("testConnection")
        self.test_result = QLabel("")
        self.test_result.setObjectName("testResult")
        self.test_result.setWordWrap(True)
        self.test_button.clicked.connect(self._test_connection)
        form.addRow("Server URL", self.base_url)
        form.addRow("API key", self.api_key)
        form.addRow("Default model", self.model)
        form.addRow(self.test_button, self.test_result)
        hint = QLabel(
            "For a local server use its OpenAI-compatible URL, e.g. "
            "http://localhost:11434/v1 (Ollama), http://localhost:1234/v1 (LM Studio) or "
            "http://localhost:8080/v1 (llama.cpp). Local servers usually need no key."
        )
        hint.setWordWrap(True)
        form.addRow(hint)
        return page

    def _defaults_page(self) -> QWidget:
        settings = self.workspace.settings
        page = QWidget()
        form = QFormLayout(page)
        self.system_prompt = QPlainTextEdit(settings.system_prompt)
        self.system_prompt.setPlaceholderText("Optional instructions sent first in every new chat")
        self.policy = QComboBox()
        for kind, label in POLICY_LABELS.items():
            self.policy.addItem(label, kind)
        self.policy.setCurrentIndex(list(POLICY_LABELS).index(settings.default_policy().kind))
        self.enter_sends = QCheckBox("Enter sends, Shift+Enter starts a new line")
        self.enter_sends.setChecked(settings.enter_sends)
        self.titles = QCheckBox("Let the model title new chats")
        self.titles.setChecked(settings.generate_titles)
        form.addRow("System prompt", self.system_prompt)
        form.addRow("Memory", self.policy)
        form.addRow(self.enter_sends)
        form.addRow(self.titles)
        return page

    def _appearance_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.theme = QComboBox()
        for value, label in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(self.workspace.settings.theme)))
        form.addRow("Theme", self.theme)
        return page

    def _data_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        paths = self.workspace.paths
        for label, value in (
            ("Database", str(paths.database)),
            ("Settings", str(paths.config)),
            ("Logs", str(paths.logs)),
        ):
            field = QLineEdit(value)
            field.setReadOnly(True)
            form.addRow(label, field)
        state = encryption.status(paths, self.workspace.settings)
        self.encrypt = QCheckBox(
            "Encrypt the database (SQLCipher; the key stays in the OS keyring)"
        )
        self.encrypt.setObjectName("encryptDatabase")
        self.encrypt.setChecked(state.wanted)
        self.encrypt.setEnabled(state.available or state.encrypted)
        self.encrypt_note = QLabel(state.describe())
        self.encrypt_note.setObjectName("encryptionStatus")
        self.encrypt_note.setWordWrap(True)
        self.encrypt.toggled.connect(self._on_encrypt_toggled)
        form.addRow(self.encrypt)
        form.addRow(self.encrypt_note)
        settings = self.workspace.settings
        self.backup_every = QSpinBox(minimum=0, maximum=30, suffix=" day(s)")
        self.backup_every.setSpecialValueText("Never")
        self.backup_every.setValue(settings.backup_every_days)
        self.backups_kept = QSpinBox(minimum=1, maximum=100)
        self.backups_kept.setValue(settings.backups_kept)
        form.addRow("Automatic backup every", self.backup_every)
        form.addRow("Automatic backups kept", self.backups_kept)
        form.addRow(
            QLabel("Import, export, Back up now and Restore a backup are in the File menu.")
        )
        return page

    def _on_encrypt_toggled(self, checked: bool) -> None:
        state = encryption.status(self.workspace.paths, self.workspace.settings)
        if checked == state.encrypted:
            self.encrypt_note.setText(state.describe())
        else:
            change = "encrypted" if checked else "decrypted (stored in clear)"
            self.encrypt_note.setText(
                f"The database will be {change} the next time {APP_NAME} starts."
            )

    def _config(self) -> ProviderConfig:
        key = self.api_key.text().strip() or None
        if key is None:
            try:
                key = secrets.get_api_key(self.workspace.settings.provider().name)
            except UserFacingError:
                key = None
        return ProviderConfig(
            name=self.workspace.settings.provider().name,
            base_url=self.base_url.text().strip() or None,
            api_key=key,
            timeout=15.0,
            max_retries=0,
        )

    def _test_connection(self) -> None:
        self.test_result.setText("Testing…")
        self.test_button.setEnabled(False)
        client = ChatClient(self._config())

        def done(models: list[str]) -> None:
            self.test_button.setEnabled(True)
            if models:
                shown = ", ".join(models[:8]) + (" …" if len(models) > 8 else "")
                self.test_result.setText(f"✔ Connected. {len(models)} model(s): {shown}")
                current = self.model.currentText()
                self.model.clear()
                self.model.addItems(models)
                self.model.setCurrentText(current)
            else:
                self.test_result.setText("✔ Connected (the server lists no models).")

        def failed(exc: Exception) -> None:
            self.test_button.setEnabled(True)
            self.test_result.setText(f"✘ {exc}")

        run_job(client.list_models, done, failed, owner=self)

    def _save(self) -> None:
        settings = self.workspace.settings
        provider = settings.provider()
        provider.base_url = self.base_url.text().strip() or None
        provider.default_model = self.model.currentText().strip() or provider.default_model
        key = self.api_key.text().strip()
        if key:
            try:
                secrets.set_api_key(provider.name, key)
            except UserFacingError as exc:
                self.test_result.setText(f"✘ {exc.message}")
                return
        settings.system_prompt = self.system_prompt.toPlainText()
        settings.memory_policy = MemoryPolicy(kind=PolicyKind(self.policy.currentData())).to_json()
        settings.enter_sends = self.enter_sends.isChecked()
        settings.generate_titles = self.titles.isChecked()
        settings.theme = self.theme.currentData()
        settings.backup_every_days = self.backup_every.value()
        settings.backups_kept = self.backups_kept.value()
        if self.encrypt.isChecked() != encryption.status(self.workspace.paths, settings).wanted:
            # The database is rewritten while closed: at the next start, before
            # anything opens it (services.encryption.apply_setting).
            settings.encrypt_database = self.encrypt.isChecked()
        self.workspace.save_settings()
        self.accept()


class ConversationDialog(QDialog):
    """This chat's model, system prompt, sampling, reply length and memory (with its summary)."""

    def __init__(
        self, service: ChatService, conversation_id: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.conversation_id = conversation_id
        conversation = service.repo.get_conversation(conversation_id)
        self.setWindowTitle("Chat settings")
        self.setMinimumWidth(520)
        form = QFormLayout()
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setObjectName("chatModel")
        self.model.setCurrentText(service.model_for(conversation))
        self.system_prompt = QPlainTextEdit(conversation.system_prompt)
        self.system_prompt.setObjectName("chatSystemPrompt")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(-0.01, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText("Model default")
        self.temperature.setValue(float(conversation.params.get("temperature", -0.01)))
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 1_000_000)
        self.max_tokens.setSpecialValueText("Model default")
        self.max_tokens.setValue(int(conversation.params.get("max_output_tokens") or 0))
        self.policy = QComboBox()
        self.policy.setObjectName("chatPolicy")
        for kind, label in POLICY_LABELS.items():
            self.policy.addItem(label, kind)
        policy = conversation.memory_policy
        self.policy.setCurrentIndex(list(POLICY_LABELS).index(policy.kind))
        self.last_n = QSpinBox()
        self.last_n.setRange(1, 10_000)
        self.last_n.setValue(policy.last_n)
        self.summary = QPlainTextEdit(conversation.summary or "")
        self.summary.setObjectName("chatSummary")
        self.summary.setPlaceholderText(
            "With the summary policy, older messages are summarized here when they no longer fit. "
            "You can edit it."
        )
        form.addRow("Model", self.model)
        form.addRow("System prompt", self.system_prompt)
        form.addRow("Temperature", self.temperature)
        form.addRow("Max reply tokens", self.max_tokens)
        form.addRow("Memory", self.policy)
        form.addRow("N (last N messages)", self.last_n)
        form.addRow("Summary", self.summary)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _save(self) -> None:
        params = {}
        if self.temperature.value() >= 0:
            params["temperature"] = round(self.temperature.value(), 2)
        if self.max_tokens.value() > 0:
            params["max_output_tokens"] = self.max_tokens.value()
        summary = self.summary.toPlainText().strip() or None
        self.service.repo.update_conversation(
            self.conversation_id,
            model=self.model.currentText().strip() or None,
            system_prompt=self.system_prompt.toPlainText(),
            params=params,
            memory_policy=MemoryPolicy(
                kind=PolicyKind(self.policy.currentData()), last_n=self.last_n.value()
            ),
            summary=summary,
        )
        self.accept()


def about_text(workspace: Workspace) -> str:
    rows = []
    for name in BUNDLED:
        try:
            meta = metadata.metadata(name).json
            license_name = str(
                meta.get("license_expression") or meta.get("license") or "see package"
            )
            rows.append(
                f"<tr><td>{name}</td><td>{metadata.version(name)}</td><td>{license_name[:40]}</td></tr>"
            )
        except metadata.PackageNotFoundError:
            continue
    return (
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>A desktop chat client that keeps every conversation on this computer.</p>"
        f"<p>Data: {workspace.paths.database}</p>"
        "<p>Licensed under the MIT license. Built with:</p>"
        f"<table>{''.join(rows)}</table>"
    )
